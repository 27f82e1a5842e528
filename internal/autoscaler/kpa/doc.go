// Package kpa is the Knative Pod Autoscaler: for each PodAutoscaler of class
// kpa.autoscaling.knative.dev it scrapes the revision's queue-proxies every second, takes the
// activator's reports, decides the scale every two seconds (and at once when the activator
// asks for a revision at zero), sets the Deployment's scale through its scale subresource,
// and reports the decision in the PodAutoscaler's status: desired and actual scale, Active,
// and whether the activator holds the revision's route (its mode). The decisions themselves
// are internal/autoscaler/scaling's; the windows internal/autoscaler/metrics's.
package kpa
