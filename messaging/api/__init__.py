"""The HTTP API of the messaging domain (Django REST framework, documented by drf-spectacular).

Views parse the request, call one selector or service and shape the response; the rules live in
`messaging.services` (writes) and `messaging.selectors` (reads).
"""
