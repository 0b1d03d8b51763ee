//! The palimpsest log: certified blocks in sled, indexes derived from them.
