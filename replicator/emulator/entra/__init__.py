"""The emulated Entra ID tenant: access tokens (tokens.py), identities and their roles (identities.py),
joined in directory.py. The lowest layer of the emulator beside errors: it knows no HTTP and no plane."""
