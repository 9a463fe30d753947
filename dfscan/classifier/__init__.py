"""The model: which file (`registry`, `hub`, `pins`, `calibrated`), what it is (`model_info`), opened
without running its code (`safe_load`), run on OpenVINO or TensorFlow (`runtime`, `backend`) in batches
(`model`), and what drove a score (`explain`)."""
