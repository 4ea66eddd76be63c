"""Assign Microsoft 365 licenses with chosen service plans disabled, verify provisioning, record it."""
