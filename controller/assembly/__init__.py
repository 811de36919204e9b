"""The final video: plan (pure), engine (PyAV), reconciler (S3 and threads)."""
