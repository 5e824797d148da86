package controllers

import eventsv1 "k8s.io/api/events/v1"

type eventsList struct{ eventsv1.EventList }
