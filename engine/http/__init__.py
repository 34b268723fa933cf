"""HTTP/1.1 for the layer-7 proxy: sans-IO codec (codec), serialisation (wire)."""
