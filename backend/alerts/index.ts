/** The alert store and its model, for the API's context and routes. */
export { AlertError, AlertStore, type AlertPage, type AlertQuery, type AlertScope } from "./store";
export { alertSettingsSchema, loadAlertSettings, type AlertSettings } from "./config";
export * from "./model";
