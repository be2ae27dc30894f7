"""Compile targets, one file each."""
