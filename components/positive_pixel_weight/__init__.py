"""PositivePixelWeight: the class weight of tumor pixels, computed with Beam on the train split."""
