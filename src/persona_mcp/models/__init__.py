"""Pydantic domain models shared by services and doors."""
