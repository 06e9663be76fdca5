"""Helpers the tests import (conftest.py files hold only fixtures)."""
