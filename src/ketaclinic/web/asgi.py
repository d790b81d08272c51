"""ASGI entry point for uvicorn workers: settings come from the environment, read here."""

from __future__ import annotations

from fastapi import FastAPI

from ketaclinic.bootstrap import build_services
from ketaclinic.config import load_settings
from ketaclinic.web.app import create_app


def app_factory() -> FastAPI:
    return create_app(build_services(load_settings()))
