"""CRM data layer: the canonical schema, sources (files, SQL, demo) and validation."""
from crm.data import CrmData
from crm.schema import REQUIRED_TABLES, TABLE_NAMES, TABLES

__all__ = ["CrmData", "TABLES", "TABLE_NAMES", "REQUIRED_TABLES"]
