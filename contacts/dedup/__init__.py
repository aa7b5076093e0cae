"""Finding duplicate contacts: normalizing what people type, blocking (which pairs are worth
comparing at all), comparing a pair field by field, and scoring it with weights learned from
labelled data (a Fellegi–Sunter model kept in model.json beside this file).

Pure functions over plain values: the scans, the Data Health page and the command line feed
them rows and store what they answer."""
