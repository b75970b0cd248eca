"""Preference tuning (DPO / IPO / ORPO / SimPO): pairs of a chosen and a rejected answer to one prompt.

data.py     preference pairs read and checked (prompt: text or chat messages; answers: text or the final assistant
            message), split by prompt
encode.py   a pair -> two rows under the chat template, the same prompt tokens, labels on each answer only; the prompt
            cut from the left when a pair is too long
"""
