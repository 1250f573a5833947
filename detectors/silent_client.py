"""Being written: see the detectors issue."""
