-- The simulated cluster's controllers, in the order the sim loads them. Each
-- module returns function(sim) that subscribes to the store and keeps its
-- state in its own closure. node comes first so Nodes exist before any pod
-- is scheduled.
return {
  "atom.sim.controllers.node",
  "atom.sim.controllers.namespace",
  "atom.sim.controllers.pod",
  "atom.sim.controllers.replicaset",
  "atom.sim.controllers.deployment",
}
