"""This package's sequential models; the registry finds each ``<name>.py`` holding class ``<Name>``."""
