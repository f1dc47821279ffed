"""The people side of Herald: the subscriber store, segments, import, consent, erasure and signed links.
It imports the foundation only, never the publishing side or the web."""
