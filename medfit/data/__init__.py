"""Data: the manifest (absolute paths), manifest rows, patient-grouped splits, studies and in-memory datasets."""
