"""What is protected: file trees now; databases and devices in later plugins."""
