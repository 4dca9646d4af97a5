"""Training: the shared loop, packed seeds, device choice, sample pictures and event files. The only
home of backward() and optimizer steps."""
