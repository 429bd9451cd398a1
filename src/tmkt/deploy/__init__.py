"""After training: run a trained checkpoint on new recordings (`predict`), report its operations
and energy the way SNN papers do (`energy`), and export its event path to NIR for neuromorphic
hardware (`nir_export`). `trained.load_trained` is the one way all three open a run."""
