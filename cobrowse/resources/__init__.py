"""Falcon resources: small classes whose collaborators are injected by `cobrowse.app`."""
