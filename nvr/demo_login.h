/*
 * demo_login.h - the first login of a demo: when nvrd starts its camera
 * simulator on a data directory without any user, it creates an `admin`
 * user with a random password, so that the API of a fresh demo is usable
 * and still not open to anyone who can reach the port.
 *
 * The password is printed once on stderr ("demo login: admin / PASSWORD")
 * and kept in DIR/demo-login (mode 0600) for the README to point at; the
 * creation goes to the audit trail (user_created, by "nvrd", without the
 * password).
 */
#ifndef NVR_DEMO_LOGIN_H
#define NVR_DEMO_LOGIN_H

#include "audit.h"
#include "users.h"

#define DEMO_LOGIN_USER "admin"
#define DEMO_LOGIN_FILE "demo-login"

/* Does nothing (0) when the user database holds anyone; else creates the
 * admin. data_dir is the data directory. 0 or a negative errno (logged). */
int demo_login_ensure(struct users *u, struct audit *a, const char *data_dir);

#endif
