"""From an item to what a recipient reads: Markdown, catalogues and Babel, views, MJML compiled once per
edition and filled per recipient."""
