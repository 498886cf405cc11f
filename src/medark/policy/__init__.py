"""Pure decision functions (retention now; compliance later) that explain themselves."""
