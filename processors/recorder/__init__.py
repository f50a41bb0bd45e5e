"""The recorder's process: `sq processor recorder` (the recorder itself is store.recorder)."""
