-- The simulated cluster's controllers, in the order the sim loads them. Each
-- module returns function(sim) that subscribes to the store and keeps its
-- state in its own closure. node comes first so Nodes (and the default
-- StorageClass) exist before any pod is scheduled or claim bound.
return {
  "atom.sim.controllers.node",
  "atom.sim.controllers.namespace",
  "atom.sim.controllers.pod",
  "atom.sim.controllers.replicaset",
  "atom.sim.controllers.deployment",
  "atom.sim.controllers.statefulset",
  "atom.sim.controllers.daemonset",
  "atom.sim.controllers.job",
  "atom.sim.controllers.cronjob",
  "atom.sim.controllers.service",
  "atom.sim.controllers.endpoints",
  "atom.sim.controllers.apiservice",
  "atom.sim.controllers.pvc",
  "atom.sim.controllers.crd",
  "atom.sim.controllers.hpa",
  "atom.sim.controllers.pdb",
}
