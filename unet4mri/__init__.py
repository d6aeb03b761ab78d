"""UNet4MRI: a TFX pipeline for brain-MRI tumor segmentation (library and CLI)."""
