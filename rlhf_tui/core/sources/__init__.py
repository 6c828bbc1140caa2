"""One reader per on-disk format. Each turns bytes into `records.Update`s, incrementally."""
