"""Falcon resources: small classes whose collaborators are injected by `cobrowse.web.app`."""
