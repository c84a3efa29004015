/* SPDX-License-Identifier: Apache-2.0 */
/* Where the throttler lives on the bus: one definition for the daemon and every client. */
#pragma once

#define KSM_THROTTLER_BUS_NAME "org.kata.KsmThrottler"
#define KSM_THROTTLER_OBJECT_PATH "/org/kata/KsmThrottler"
#define KSM_THROTTLER_INTERFACE "org.kata.KsmThrottler"
#define KSM_THROTTLER_ERROR_KSM_UNAVAILABLE "org.kata.KsmThrottler.Error.KsmUnavailable"

/* The systemd unit that bus activation starts (SystemdService= in the activation file). */
#define KSM_THROTTLER_UNIT "ksm-throttler.service"

/* The bus driver, for NameHasOwner, GetNameOwner and NameOwnerChanged. */
#define DBUS_DRIVER_NAME "org.freedesktop.DBus"
#define DBUS_DRIVER_PATH "/org/freedesktop/DBus"
#define DBUS_DRIVER_INTERFACE "org.freedesktop.DBus"
