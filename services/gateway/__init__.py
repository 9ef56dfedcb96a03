"""The public API: fans out to the encoder and transcriber, fuses, stores, searches, predicts."""
