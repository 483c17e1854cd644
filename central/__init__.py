"""gaitmil central: the district/school side of the kiosks.

Ingests results, status and health from MQTT into one database, serves the
dashboard for school nurses, district health officers and technicians. It
shares only the published contract with the kiosk (gaitcontract: the JSON Schemas and the
topic layout), never the kiosk's code.
"""
