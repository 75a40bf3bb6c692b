export {
  goalpostDestination,
  GoalpostPluginError,
  type GoalpostDestinationOptions,
  type GoalpostPlugin,
  type GoalpostPluginStats,
} from './destination.ts'
