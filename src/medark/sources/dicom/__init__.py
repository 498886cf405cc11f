"""DICOM files: their headers, for the catalog (nothing here touches the repository)."""
