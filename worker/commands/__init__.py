"""What the `herald` command does beyond the core: check, the campaign and event commands, and running the
processes (worker, beat, web, up) with the local Redis and the start-up checks."""
