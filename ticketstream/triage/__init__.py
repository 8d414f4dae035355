"""Triage (分類 → 分級 → 派單): classify, grade and route a complaint; the learned model and its training."""
