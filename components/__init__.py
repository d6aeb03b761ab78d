"""The project's own TFX components and TFMA metrics."""
