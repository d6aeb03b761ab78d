"""Pure model code: network builders, losses, metrics, input pipeline and export.

Everything here is importable and testable without TFX; `trainer_module.run_fn`
is the thin glue the TFX Trainer calls.
"""
