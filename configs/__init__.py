"""Typed settings and the shipped YAML profiles."""

from configs.settings import ConfigError, Settings, load_config

__all__ = ["ConfigError", "Settings", "load_config"]
