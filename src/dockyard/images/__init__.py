"""Images: content store, overlay2 layer store, layer tar apply/diff."""
