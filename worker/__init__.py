"""The publishing side of Herald: content, rendering, delivery and the `herald` command."""
