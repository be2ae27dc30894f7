"""Metadata to targets: the app's OpenAPI document (more targets to come), cached by hash."""
