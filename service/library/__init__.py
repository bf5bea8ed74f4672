"""The shared library: tasks every key can rank against; only admins change it."""
