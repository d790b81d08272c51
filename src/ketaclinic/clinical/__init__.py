"""The pure clinical core: standard library, numpy and scipy only. No I/O, no clock reads."""
