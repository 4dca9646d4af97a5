"""What a user runs on trained models: `bench eval`, `bench sample`, `bench score`, `bench explore`."""
