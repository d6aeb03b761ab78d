"""The domain core: slice reader, metrics, synthetic data, overlays and the
contracts between producers and consumers. Imports no TensorFlow, TFX or Keras
(import-linter checks it), so every layer above can use it."""
