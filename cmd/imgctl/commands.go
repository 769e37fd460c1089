package main

import "github.com/spf13/cobra"

// commandGroups are the top-level command groups, in help order. Each adds its
// commands to root and reads shared flags from g. One line per command file.
var commandGroups = []func(root *cobra.Command, g *globals){
	addVersionCommand,
	addBuildCommands,
	addImageCommands,
	addArtifactCommands,
	addOverlayCommands,
	addCaptureCommand,
	addRegistryCommands,
	addPowerCommands,
	addDiscoverCommands,
	addNodeCommands,
	addGroupCommands,
	addServeCommand,
	addVMCommands,
	addConfigCommands,
	addStoreCommands,
	addCloudInitCommands,
	addDistCommands,
	addCICommand,
}
