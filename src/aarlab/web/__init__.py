"""The dashboard: server-rendered pages over the store (``routes``), their data (``queries``),
the progress chart's geometry (``chart``) and the admin's browser sign-in (``auth``)."""
