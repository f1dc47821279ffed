"""Content as editors write it: the item format, dates, what an operator types for an item, template lint."""
