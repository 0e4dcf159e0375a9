from __future__ import annotations

from django.urls import path

from .ra_api import api

urlpatterns = [path("api/ra/", api.urls)]
