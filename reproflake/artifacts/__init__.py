"""Artifacts built from a project's environments and step outputs (OCI images)."""
